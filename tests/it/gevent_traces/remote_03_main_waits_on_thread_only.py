# Main waits on a result only another thread will deliver (through the
# hub's threadsafe callback), nothing else pending.
import gevent, threading, time
from gevent.event import AsyncResult
t = []
hub = gevent.get_hub()
ar = AsyncResult()
def other():
    time.sleep(0.05)
    hub.loop.run_callback_threadsafe(ar.set, "v")
th = threading.Thread(target=other)
th.start()
try:
    t.append("got-" + ar.get())
except gevent.hub.LoopExit:
    t.append("loop-exit")
th.join()
print(t)
