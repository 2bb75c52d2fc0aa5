import AsyncSpawn
let clock = ContinuousClock()
var c = Configuration(executable: "sh", arguments: ["-c", "sleep 5 & sleep 10"])
c.timeout = .milliseconds(300)
var t0 = clock.now
let r2 = try await run(c)
print(r2.termination, r2.outcome, r2.usage.wallTime, clock.now - t0)
t0 = clock.now
for _ in 0..<100 { _ = try await run(Configuration(executable: "/bin/true")) }
print("100 true", clock.now - t0)
