-- A monotonic clock in microseconds for wrk's LuaJIT, through the FFI.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local spec = ffi.new("bench_timespec")

return function()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, spec)
  return tonumber(spec.tv_sec) * 1e6 + tonumber(spec.tv_nsec) / 1e3
end
