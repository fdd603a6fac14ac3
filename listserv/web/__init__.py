"""The web door: pages served by ``commonroom serve`` (FastAPI on Starlette, through uvicorn).

Every route is a thin door over ``listserv`` functions: it reads the request, calls the same
function the mail and CLI doors call, and renders the outcome. No rule lives in a route.
"""
