"""`graders serve`: the hosted graders API (`/run`, `/validate`) and OpenRLHF's `/get_reward` on a local server.

`app.create_app(ServerConfig(...))` builds the ASGI app (Starlette); `app.serve(config)` runs it on uvicorn.
Starlette and uvicorn come with the `server` extra (`pip install 'graders[server]'`).
"""
