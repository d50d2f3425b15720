# serve_forever in a greenlet; a handler calls stop(): serve_forever
# returns after the handlers are dealt with.
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
srv = None
def handle(sock, addr):
    L.append("handler stops server")
    srv.stop()
    L.append("handler after stop")
srv = StreamServer(("127.0.0.1", 0), handle)
srv.init_socket()
def run():
    srv.serve_forever()
    L.append("serve_forever returned")
g = gevent.spawn(run)
gevent.sleep(0.01)
c = socket.create_connection(srv.address)
g.join()
L.append("joined")
print(L)
