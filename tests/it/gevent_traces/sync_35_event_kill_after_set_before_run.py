import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ev = Event()
def waiter():
    log("w wait"); ev.wait(); log("w woke")
    return "returned"
g = gevent.spawn(waiter)
gevent.sleep(0)
ev.set()
g.kill()
log("main: killed=%s value=%s" % (isinstance(g.value, gevent.GreenletExit), g.value))
ev.clear()
g2 = gevent.spawn(waiter)
gevent.sleep(0)
g2.kill(block=False)
ev.set()
g2.join()
log("main: g2 killed=%s" % isinstance(g2.value, gevent.GreenletExit))
print(json.dumps(L))
