-- POST /v1/step-up to the seeded accounts in turn, counting 201s:
--   wrk -s scripts/wrk/issue.lua URL -- ACCOUNTS_FILE   (`id phone` lines)
package.path = package.path .. ";" .. (os.getenv("WRK_SCRIPTS") or "scripts/wrk") .. "/?.lua"
require("count")
want = 201
local ids = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local id = line:match("^(%S+)")
    if id then
      ids[#ids + 1] = id
    end
  end
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % #ids + 1
  return wrk.format("POST", "/v1/step-up", nil, '{"account_id":"' .. ids[i] .. '"}')
end
