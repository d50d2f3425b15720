# Two greenlets wait for values from another thread; a value is handed
# over while the hub is blocked, and the first waiter is killed before the
# hub gets to it: the second gets the value.
import gevent, threading
from gevent.queue import Queue
t = []
hub = gevent.get_hub()
q = Queue()
def rx(n):
    try:
        t.append(n + str(q.get()))
    finally:
        t.append(n + "-finally")
a = gevent.spawn(rx, "a")
b = gevent.spawn(rx, "b")
gevent.sleep(0)
th = threading.Thread(target=lambda: hub.loop.run_callback_threadsafe(q.put, 1))
th.start()
th.join()
a.kill()
t.append("a-killed")
b.join(1)
t.append("main")
print(t)
