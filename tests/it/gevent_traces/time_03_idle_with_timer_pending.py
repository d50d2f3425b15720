# idle() returns while a sleeper's timer is still pending.
import gevent
t = []
h = gevent.spawn(lambda: (gevent.sleep(0.02), t.append("h-woke")))
def g():
    t.append("g-start")
    gevent.idle()
    t.append("g-idle")
i = gevent.spawn(g)
gevent.joinall([h, i])
t.append("main")
print(t)
