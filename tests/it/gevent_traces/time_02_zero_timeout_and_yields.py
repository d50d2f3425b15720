# A zero timeout: does it fire at a yield, or only at the first real wait?
import gevent
t = []
def g():
    try:
        with gevent.Timeout(0):
            t.append("a")
            gevent.sleep(0)
            t.append("b")
            gevent.sleep(0)
            t.append("c")
            gevent.sleep(0.01)
            t.append("d")
    except gevent.Timeout:
        t.append("timeout")
x = gevent.spawn(lambda: [t.append("x%d" % i) or gevent.sleep(0) for i in range(3)])
gevent.spawn(g).join()
x.join()
t.append("main")
print(t)
