# killall with a timeout: one greenlet dies, one catches the kill and
# survives; the survivor is killed again later.
import gevent
t = []
def mortal():
    try:
        gevent.sleep(10)
    finally:
        t.append("mortal-finally")
def stubborn():
    try:
        gevent.sleep(10)
    except gevent.GreenletExit:
        t.append("stubborn-caught")
    try:
        gevent.sleep(10)
    finally:
        t.append("stubborn-finally")
a = gevent.spawn(mortal)
b = gevent.spawn(stubborn)
gevent.sleep(0)
try:
    gevent.killall([b, a], timeout=0.02)
    t.append("killall-returned")
except gevent.Timeout:
    t.append("killall-timeout")
t.append("a.dead=%s b.dead=%s" % (a.dead, b.dead))
b.kill()
t.append("b.dead=%s" % b.dead)
print(t)
