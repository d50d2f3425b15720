# kill(block=False) of two parked greenlets with a third ready: the kills
# land in call order, behind what was already ready.
import gevent
t = []
def parked(n):
    try:
        gevent.sleep(10)
    finally:
        t.append(n + "-finally")
a = gevent.spawn(parked, "a")
b = gevent.spawn(parked, "b")
gevent.sleep(0)
x = gevent.spawn(lambda: t.append("x"))
b.kill(block=False)
a.kill(block=False)
t.append("main-after-kills")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
