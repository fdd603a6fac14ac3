"""``python -m listserv`` runs the ``commonroom`` command line."""

from listserv.cli import main

main(prog_name="commonroom")
