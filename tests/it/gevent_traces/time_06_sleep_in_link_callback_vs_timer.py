# A link callback sleeps 10 ms; a sleeper due at 5 ms and main's join run
# meanwhile.
import gevent
t = []
def cb(g):
    t.append("cb-start")
    gevent.sleep(0.01)
    t.append("cb-end")
g = gevent.spawn(t.append, "g")
g.link(cb)
s = gevent.spawn(lambda: (gevent.sleep(0.005), t.append("s-woke")))
g.join()
t.append("main-joined")
gevent.sleep(0.03)
t.append("main")
print(t)
