# killall over a dead, an unstarted, and two parked greenlets, each with a
# link: finally and link order.
import gevent
t = []
def parked(n):
    try:
        t.append(n + "-start")
        gevent.sleep(10)
    finally:
        t.append(n + "-finally")
dead = gevent.spawn(lambda: None)
dead.join()
p1 = gevent.spawn(parked, "p1")
p2 = gevent.spawn(parked, "p2")
gevent.sleep(0)
u = gevent.spawn(lambda: t.append("u-ran"))
for n, g in (("dead", dead), ("p1", p1), ("u", u), ("p2", p2)):
    g.link(lambda g, n=n: t.append(n + "-link"))
t.append("main-killall")
gevent.killall([dead, p2, u, p1])
t.append("main-killall-returned")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
