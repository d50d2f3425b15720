# Two greenlets wait for values that another thread sends (queue puts run
# threadsafe on the hub); each takes the next value when it runs.
import gevent, threading
from gevent.queue import Queue
t = []
hub = gevent.get_hub()
q = Queue()
def rx(n):
    while True:
        t.append(n + str(q.get()))
a = gevent.spawn(rx, "a")
b = gevent.spawn(rx, "b")
gevent.sleep(0)
def other():
    for i in (1, 2, 3):
        hub.loop.run_callback_threadsafe(q.put, i)
th = threading.Thread(target=other)
th.start()
th.join()
t.append("sent")
gevent.sleep(0.02)
t.append("main")
gevent.killall([a, b])
print(t)
