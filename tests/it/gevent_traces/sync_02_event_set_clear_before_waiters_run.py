import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ev = Event()
def waiter(name):
    log(name + " wait"); r = ev.wait(); log("%s woke %s set=%s" % (name, r, ev.is_set()))
gevent.spawn(waiter, "w0"); gevent.spawn(waiter, "w1")
gevent.sleep(0)
ev.set(); ev.clear(); log("main set+clear")
late = gevent.spawn(waiter, "late")
gevent.sleep(0)
log("main: late dead=%s" % late.dead)
ev.set(); log("main set again")
late.join()
log("main done")
print(json.dumps(L))
