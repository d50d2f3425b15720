# main kills a greenlet parked in sleep that has a link registered before
# the kill: does kill() return before the link callback runs?
import gevent
t = []
def body():
    try:
        gevent.sleep(10)
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
g.link(lambda g: t.append("link"))
gevent.sleep(0)
t.append("main-kill")
g.kill()
t.append("main-kill-returned")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
