# idle() returns only once nothing else is ready: after every yield loop.
import gevent
t = []
def idler():
    t.append("i-start")
    gevent.idle()
    t.append("i-idle1")
    gevent.idle()
    t.append("i-idle2")
def yielder(n):
    for i in range(3):
        t.append(n + str(i))
        gevent.sleep(0)
    t.append(n + "-end")
i = gevent.spawn(idler)
y = gevent.spawn(yielder, "y")
z = gevent.spawn(yielder, "z")
gevent.joinall([i, y, z])
t.append("main")
print(t)
