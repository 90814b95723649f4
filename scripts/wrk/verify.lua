-- POST /v1/step-up/verify with each prepared code once, counting 200s:
--   wrk -t1 -s scripts/wrk/verify.lua URL -- CODES_FILE   (`challenge_id code` lines,
--   from `otp-loadtest --codes`). Once every code is used it starts again
-- (those answers are 410 already_used and are not counted): prepare more
-- codes than the run can use.
package.path = package.path .. ";" .. (os.getenv("WRK_SCRIPTS") or "scripts/wrk") .. "/?.lua"
require("count")
want = 200
local bodies = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local challenge, code = line:match("^(%S+) (%d+)")
    if challenge then
      bodies[#bodies + 1] = '{"challenge_id":"' .. challenge .. '","code":"' .. code .. '"}'
    end
  end
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/step-up/verify", nil, bodies[i])
end
