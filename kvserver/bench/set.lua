-- SET: the book's save route over 1000 keys, 32-byte values.
local value = string.rep("v", 32)
request = function()
  return wrk.format("GET", "/save/key" .. math.random(0, 999) .. "/" .. value)
end
