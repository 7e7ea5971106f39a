"""`make bench`: two benchmarks of the real suite, in one run on one machine.

1. login: password-grant logins/s through api against the raw argon2id verify rate at the
   users service's parameters, at the same concurrency (argon2 should dominate a login);
2. edge: the authenticated, rate-limited, revocation-checked `GET /v1/items/{id}` of api
   against a bare FastAPI app and against a "floor" app doing only the same I/O.

Results are printed as a table and written to `.data/bench/results.json`."""
