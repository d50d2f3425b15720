# A thread's result arrives while the hub is blocked (the job waits until
# main's stall has begun, so its greenlet surely parked); when main then
# yields, do greenlets spawned meanwhile run before the waiter wakes?
import gevent, threading, time
t = []
tp = gevent.get_hub().threadpool
go = threading.Event()
done = threading.Event()
def job():
    go.wait()
    done.set()
    return "r"
g = gevent.spawn(lambda: t.append("g-" + tp.apply(job)))
gevent.sleep(0)
go.set()
done.wait()
time.sleep(0.05)
gevent.spawn(t.append, "x")
gevent.spawn(t.append, "y")
gevent.sleep(0)
t.append("main-sleep0")
g.join()
t.append("main")
print(t)
