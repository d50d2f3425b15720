# A greenlet parked in sleep when main forks goes on in both processes; the
# child reports its trace through a pipe.
import gevent, os
import gevent.os
t = []
g = gevent.spawn(lambda: (gevent.sleep(0.02), t.append("g-woke")))
gevent.sleep(0)
r, w = os.pipe()
pid = gevent.os.fork()
if pid == 0:
    os.close(r)
    t.append("child")
    g.join()
    t.append("child-joined")
    os.write(w, repr(t).encode())
    os._exit(0)
os.close(w)
t.append("parent")
g.join()
t.append("parent-joined")
_, status = gevent.os.waitpid(pid, 0)
child = gevent.os.tp_read(r, 4096).decode()
t.append("child-status-%d" % os.waitstatus_to_exitcode(status))
print(child)
print(t)
