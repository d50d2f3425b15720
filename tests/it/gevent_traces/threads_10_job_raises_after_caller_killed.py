# The caller is killed while its job runs; the job then raises. Nobody
# waits for the result any more: is the exception reported anywhere?
import gevent, threading, sys
t = []
tp = gevent.get_hub().threadpool
gate = threading.Event()
started = threading.Event()
finished = threading.Event()
def job():
    started.set()
    gate.wait()
    try:
        raise ValueError("orphan-boom")
    finally:
        finished.set()
g = gevent.spawn(tp.apply, job)
gevent.sleep(0)
started.wait()
g.kill()
t.append("killed")
gate.set()
finished.wait()
gevent.sleep(0.05)
t.append("main")
print(t)
