# Another OS thread hands the hub three spawns while main blocks the thread
# (joining it); a greenlet spawned before and one after, then main yields.
import gevent, threading
t = []
hub = gevent.get_hub()
gevent.spawn(t.append, "x")
def other():
    for i in (1, 2, 3):
        hub.loop.run_callback_threadsafe(gevent.spawn, t.append, "r%d" % i)
th = threading.Thread(target=other)
th.start()
th.join()
gevent.spawn(t.append, "z")
gevent.sleep(0)
t.append("main-sleep0")
gevent.sleep(0.01)
t.append("main")
print(t)
