# joinall with a timeout over a dead greenlet, a just-spawned (unstarted)
# one that finishes, and a sleeper that outlives the timeout.
import gevent
t = []
dead = gevent.spawn(lambda: t.append("dead-ran"))
dead.join()
fresh = gevent.spawn(lambda: t.append("fresh-ran"))
def sleeper():
    try:
        t.append("sleeper-start")
        gevent.sleep(0.2)
        t.append("sleeper-end")
    finally:
        t.append("sleeper-finally")
s = gevent.spawn(sleeper)
done = gevent.joinall([dead, fresh, s], timeout=0.02)
t.append("joinall:%d:%s" % (len(done), s.dead))
s.kill()
t.append("killed")
print(t)
