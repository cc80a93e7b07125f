package dev.eddy.hadoop;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.UnknownHostException;

import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.net.StandardSocketFactory;

/**
 * A Hadoop socket factory whose client sockets are bound to one local address before they
 * connect.
 *
 * <p>Used by the process cluster of scripts/hadoop-cluster.sh: its DataNodes listen on
 * 127.0.0.2 and 127.0.0.3, but the NameNode registers a DataNode under the source IP of its
 * RPC connection, and Linux picks 127.0.0.1 as the source of any loopback connection. Without
 * this both DataNodes would register as 127.0.0.1 (and, having the same transfer port, evict
 * each other). Set in a daemon's configuration:
 *
 * <pre>
 *   hadoop.rpc.socket.factory.class.default = dev.eddy.hadoop.BoundSocketFactory
 *   eddy.socket.bind-address                = 127.0.0.2
 * </pre>
 */
public class BoundSocketFactory extends StandardSocketFactory implements Configurable {
  public static final String BIND_ADDRESS_KEY = "eddy.socket.bind-address";

  private Configuration conf;
  private InetAddress bindAddress;

  @Override
  public void setConf(Configuration conf) {
    this.conf = conf;
    String host = conf == null ? null : conf.getTrimmed(BIND_ADDRESS_KEY);
    try {
      bindAddress = host == null || host.isEmpty() ? null : InetAddress.getByName(host);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(BIND_ADDRESS_KEY + " = " + host, e);
    }
  }

  @Override
  public Configuration getConf() {
    return conf;
  }

  @Override
  public Socket createSocket() throws IOException {
    Socket socket = super.createSocket();
    if (bindAddress != null) {
      socket.bind(new InetSocketAddress(bindAddress, 0));
    }
    return socket;
  }

  @Override
  public Socket createSocket(InetAddress addr, int port) throws IOException {
    Socket socket = createSocket();
    socket.connect(new InetSocketAddress(addr, port));
    return socket;
  }

  @Override
  public Socket createSocket(String host, int port) throws IOException {
    Socket socket = createSocket();
    socket.connect(new InetSocketAddress(host, port));
    return socket;
  }
}
