"""Broken on purpose: answers a missing credential with an identity that names no app and no
user, instead of rejecting it (caught by auth.verdict-valid)."""

from __future__ import annotations

from celgate.sdk import Auth, Authenticated, Identity, Plugin, Rejected, RequestContext, serve


class BadIdentity(Plugin, Auth):
    inline_sync = True

    def authenticate(self, ctx: RequestContext, credential: str) -> Authenticated | Rejected:
        if not credential.strip():
            return Authenticated(Identity())  # "authenticated" as nobody
        return Rejected(401, "unknown key")


if __name__ == "__main__":
    serve(BadIdentity())
