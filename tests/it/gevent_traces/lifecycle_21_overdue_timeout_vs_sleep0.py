# A greenlet whose Timeout became overdue while the thread was blocked
# (time.sleep) then calls sleep(0): does the timeout land at that yield?
import gevent, time
t = []
def body():
    try:
        with gevent.Timeout(0.01):
            t.append("g-start")
            time.sleep(0.03)      # blocks the whole thread past the deadline
            t.append("g-yield")
            gevent.sleep(0)
            t.append("g-after-yield")
            gevent.sleep(0)
            t.append("g-after-yield2")
    except gevent.Timeout:
        t.append("g-timeout")
g = gevent.spawn(body)
x = gevent.spawn(lambda: t.append("x"))
g.join()
t.append("main")
print(t)
