-- GET: the book's load route over the 1000 keys the SET phase wrote.
request = function()
  return wrk.format("GET", "/load/key" .. math.random(0, 999))
end
