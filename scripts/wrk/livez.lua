-- GET /livez, counting 200s: the bare-HTTP ceiling of the same server.
package.path = package.path .. ";" .. (os.getenv("WRK_SCRIPTS") or "scripts/wrk") .. "/?.lua"
require("count")
want = 200
wrk.method = "GET"
wrk.path = "/livez"
