# main calls idle() while a greenlet waits on a thread-pool job: idle
# returns before the job's result comes back.
import gevent, threading
t = []
tp = gevent.get_hub().threadpool
gate = threading.Event()
def job():
    gate.wait()
    return "r"
g = gevent.spawn(lambda: t.append("g-" + tp.apply(job)))
gevent.idle()
t.append("main-idle")
gate.set()
g.join()
t.append("main")
print(t)
