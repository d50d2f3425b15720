# One thread busy; a second greenlet waits for a slot and is killed there:
# does its job still run? (Recorded apart: it runs on the thread while
# the hub wakes g1.) The next job runs after it.
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
    return "one"
ran = []
def job2():
    ran.append("job2")
    return "two"
g1 = gevent.spawn(lambda: t.append("g1-" + tp.apply(job1)))
g2 = gevent.spawn(lambda: t.append("g2-" + tp.apply(job2)))
gevent.sleep(0)
started.wait()
g2.kill()
t.append("g2-killed")
gate.set()
g1.join()
t.append("main-" + tp.apply(lambda: (t.append("job3-ran"), "three")[1]))
t.append("job2-ran=%s" % bool(ran))
print(t)
