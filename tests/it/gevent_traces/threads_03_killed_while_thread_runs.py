# A greenlet killed while its job runs on the only thread: it unwinds at
# once; the job runs on; the slot comes back for the next job.
import gevent, threading
from gevent.threadpool import ThreadPool
t = []
tp = ThreadPool(1)
gate = threading.Event()
started = threading.Event()
def job1():
    t.append("job1-start")
    started.set()
    gate.wait()
    t.append("job1-end")
    return "one"
def g():
    try:
        t.append("g-got-" + tp.apply(job1))
    finally:
        t.append("g-finally")
a = gevent.spawn(g)
gevent.sleep(0)
started.wait()
a.kill()
t.append("killed")
h = gevent.spawn(lambda: t.append("h-" + tp.apply(lambda: "two")))
gevent.sleep(0)
t.append("h-waiting")
gate.set()
h.join()
t.append("main")
print(t)
