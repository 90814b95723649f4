-- Shared by the wrk scripts of scripts/http-ratios.sh: counts the answers
-- with the status `want` in every thread and prints, at the end, one line
--   ok <answers with that status> of <requests> in <microseconds>
-- so that a rate counts only requests that did what was asked.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

ok = 0

function response(status, headers, body)
  if status == want then
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("ok")
  end
  io.write(string.format("ok %d of %d in %d\n", total, summary.requests, summary.duration))
end
