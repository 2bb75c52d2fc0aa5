# Untrusted code for the demo: grabs memory, then burns CPU forever.
# Under `spawn --as 256M --cpu 1` the first loop meets RLIMIT_AS (MemoryError)
# and the second is ended by RLIMIT_CPU (outcome "cpu_limit").
import sys

blocks = []
try:
    for i in range(64):
        blocks.append(bytearray(32 * 1024 * 1024))
        print(f"holding {32 * (i + 1)} MiB", flush=True)
except MemoryError:
    print(f"MemoryError after {32 * len(blocks)} MiB: the address-space limit held", flush=True)
blocks.clear()
print("now spinning until the CPU limit", flush=True)
while True:
    pass
