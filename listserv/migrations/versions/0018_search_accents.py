"""search accents: PostgreSQL's tsvector indexes accent-folded text, as SQLite's FTS5 does

The generated ``tsv`` column of migration 0010 is rebuilt over ``translate(text, FROM, TO)``:
the built-in ``translate`` with ``listserv.accents``' table frozen here (no ``unaccent``
extension, which the database user may not be allowed to create). PostgreSQL recomputes the
column for every row. SQLite needs nothing: its tokenizer already folds the same letters.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# listserv.accents.FROM / TO when this was written (tests/test_accents.py checks they agree).
FROM = (
    'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜ'
    'ĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽ'
    'žƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱ'
    'ȲȳḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍ'
    'ṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẠạẢả'
    'ẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳ'
    'ỴỵỶỷỸỹ'
)
TO = (
    'AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaCcCcCcCcDdEeEeEeEeEeG'
    'gGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZ'
    'zOoUuAaIiOoUuUuUuUuUuAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOo'
    'YyAaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNnNnNnOo'
    'OoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZzhtwyAaAa'
    'AaAaAaAaAaAaAaAaAaAaEeEeEeEeEeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYy'
    'YyYyYy'
)


def _column(fold: bool) -> str:
    def text(expr: str) -> str:
        return f"translate({expr}, '{FROM}', '{TO}')" if fold else expr

    return ("ALTER TABLE search_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector('english'::regconfig, {text('subject')}), 'A') || "
            f"setweight(to_tsvector('english'::regconfig, {text('author')} || ' ' || "
            f"translate({text('author')}, '@.<>', '    ')), 'B') || "
            f"setweight(to_tsvector('english'::regconfig, {text('body')}), 'C')) STORED")


def _rebuild(fold: bool) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(sa.text("DROP INDEX IF EXISTS ix_search_text_tsv"))
    op.execute(sa.text("ALTER TABLE search_text DROP COLUMN tsv"))
    op.execute(sa.text(_column(fold)))
    op.execute(sa.text("CREATE INDEX ix_search_text_tsv ON search_text USING gin (tsv)"))


def upgrade() -> None:
    _rebuild(fold=True)


def downgrade() -> None:
    _rebuild(fold=False)
