# A Timeout and the sleep it guards have the same delay: which wins?
import gevent
t = []
def g():
    try:
        with gevent.Timeout(0.01):
            gevent.sleep(0.01)
            t.append("slept")
    except gevent.Timeout:
        t.append("timeout")
gevent.spawn(g).join()
t.append("main")
print(t)
