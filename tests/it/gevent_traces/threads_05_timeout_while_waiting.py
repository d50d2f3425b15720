# A Timeout expires while the greenlet waits on the only thread; the job
# runs on; the next call waits behind it.
import gevent, threading
from gevent.threadpool import ThreadPool
t = []
tp = ThreadPool(1)
gate = threading.Event()
def slow():
    t.append("slow-start")
    gate.wait()
    t.append("slow-end")
    return "slow"
def g():
    try:
        with gevent.Timeout(0.02):
            t.append("got-" + tp.apply(slow))
    except gevent.Timeout:
        t.append("timed-out")
a = gevent.spawn(g)
a.join()
b = gevent.spawn(lambda: t.append("next-" + tp.apply(lambda: "next")))
gevent.sleep(0)
t.append("b-waiting")
gate.set()
b.join()
t.append("main")
print(t)
