# An exception raised in the thread is raised in the waiting greenlet;
# caught, the pool still works; uncaught (g2's job raises once g is done),
# it fails the greenlet. gevent also prints each thread's exception on
# stderr.
import gevent, threading
t = []
tp = gevent.get_hub().threadpool
gate = threading.Event()
def bad():
    raise ValueError("boom")
def bad_later():
    gate.wait()
    raise ValueError("late")
def g():
    try:
        tp.apply(bad)
    except ValueError as e:
        t.append("caught-" + str(e))
    t.append("again-" + tp.apply(lambda: "ok"))
    gate.set()
def g2():
    tp.apply(bad_later)
    t.append("g2-not-reached")
a = gevent.spawn(g)
b = gevent.spawn(g2)
b.link_exception(lambda gl: t.append("g2-failed-" + str(gl.exception)))
gevent.joinall([a, b])
gevent.sleep(0.01)
t.append("main")
print(t)
