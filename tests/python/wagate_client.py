"""wagate from Python's grpcio, as a Python integrator would use it.

Usage: wagate_client.py <host:port> <stubs dir>

The stubs dir holds modules generated from proto/ by grpc_tools.protoc
(wagate/v1/*_pb2*.py, google/api/*_pb2.py). The script registers an
organization with AccountService.Register, reads it back with GetMe and the
key in `authorization` metadata, checks that GetMe without a key fails with
UNAUTHENTICATED and an ErrorInfo whose reason is UNAUTHORIZED, and prints one
JSON line: {"key", "orgId", "email", "plan"}. Any mismatch exits non-zero
with a message on stderr.

Run by tests/it/other_languages.rs; see there for how the stubs are made.
"""

import json
import sys
import uuid


def fail(message):
    print(f"wagate_client.py: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        fail("usage: wagate_client.py <host:port> <stubs dir>")
    addr, stubs = sys.argv[1], sys.argv[2]
    sys.path.insert(0, stubs)

    import grpc
    from wagate.v1 import accounts_pb2, accounts_pb2_grpc

    email = f"py-{uuid.uuid4().hex[:12]}@example.com"
    with grpc.insecure_channel(addr) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        accounts = accounts_pb2_grpc.AccountServiceStub(channel)

        registered = accounts.Register(
            accounts_pb2.RegisterRequest(
                email=email, password="correct horse battery", name="Python Corp"
            ),
            timeout=30,
        ).data
        key = registered.api_key
        if not key.startswith("sk_org_"):
            fail(f"Register returned an odd key: {key!r}")

        me = accounts.GetMe(
            accounts_pb2.GetMeRequest(),
            metadata=[("authorization", f"Bearer {key}")],
            timeout=30,
        ).data
        if me.organization.id != registered.organization.id:
            fail(f"GetMe organization {me.organization.id} != {registered.organization.id}")
        if me.user.email != email:
            fail(f"GetMe email {me.user.email!r} != {email!r}")

        try:
            accounts.GetMe(accounts_pb2.GetMeRequest(), timeout=30)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                fail(f"GetMe without a key: {err.code()} {err.details()!r}, want UNAUTHENTICATED")
            trailers = dict(err.trailing_metadata() or ())
            details = trailers.get("grpc-status-details-bin")
            if not isinstance(details, bytes):
                fail(f"GetMe without a key: no grpc-status-details-bin in {sorted(trailers)}")
            # google.rpc.Status, whose details hold an ErrorInfo with reason
            # UNAUTHORIZED; google/rpc is not among our protos, so the bytes
            # are checked rather than decoded.
            if b"type.googleapis.com/google.rpc.ErrorInfo" not in details:
                fail(f"GetMe without a key: no ErrorInfo in the status details {details!r}")
            if b"UNAUTHORIZED" not in details:
                fail(f"GetMe without a key: reason UNAUTHORIZED not in {details!r}")
        else:
            fail("GetMe without a key succeeded")

    print(
        json.dumps(
            {
                "key": key,
                "orgId": me.organization.id,
                "email": me.user.email,
                "plan": accounts_pb2.Plan.Name(me.organization.plan),
            }
        )
    )


if __name__ == "__main__":
    main()
