"""One cog per feature; each is a thin door over listserv's services."""
