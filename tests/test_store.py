from sqlmodel import select
from listserv.models import MailingList
def test_store(store):
    with store.session() as s:
        s.add(MailingList(name="x"))
    with store.session() as s:
        assert s.exec(select(MailingList)).one().name == "x"
    assert len(store.secret()) == 32 and store.secret() == store.secret()
