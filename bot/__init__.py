"""The Discord bot: a door onto the community (DESIGN.md). It calls listserv's services and
never touches tables; listserv imports it only from its process entry point and command line."""
