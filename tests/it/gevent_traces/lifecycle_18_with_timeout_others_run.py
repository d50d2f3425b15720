# with_timeout in main around a sleep: the other greenlets run meanwhile,
# the finally of the body runs before with_timeout returns, and a value
# comes back when the body finishes in time.
import gevent
t = []
def slow():
    try:
        t.append("slow-start")
        gevent.sleep(1)
        t.append("slow-end")
    finally:
        t.append("slow-finally")
def fast():
    t.append("fast")
    return "ok"
gevent.spawn(lambda: t.append("other"))
r = gevent.with_timeout(0.02, slow, timeout_value="TIMEOUT")
t.append("r1:" + r)
r = gevent.with_timeout(0.02, fast, timeout_value="TIMEOUT")
t.append("r2:" + r)
print(t)
