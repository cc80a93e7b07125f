package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * One connection to a worker's Arrow stream service, on its internal port: the magic, TLS
 * verified against the cloud's CA (the worker's certificate must name the address dialled),
 * then a header and Arrow IPC (the protocol is in {@code frame/src/service/arrow_stream.rs}).
 */
final class WorkerConnection implements AutoCloseable {
  private static final byte[] MAGIC = "EDDYARW1".getBytes(StandardCharsets.US_ASCII);
  private static final int MAX_ANSWER = 16 << 20;
  private static final int IDLE_TIMEOUT_MILLIS = 600_000;
  private static final Map<String, SSLContext> CONTEXTS = new ConcurrentHashMap<>();

  private final Socket socket;
  private final DataOutputStream out;
  private final DataInputStream in;
  final CloudAccess.Worker worker;

  WorkerConnection(CloudAccess cloud, CloudAccess.Worker worker) {
    this.worker = worker;
    Socket plain = new Socket();
    try {
      plain.setTcpNoDelay(true);
      // A worker that goes silent mid-stream (its host gone without a reset) ends the task
      // after this long instead of holding it forever; a live worker answers long before.
      plain.setSoTimeout(IDLE_TIMEOUT_MILLIS);
      plain.connect(new InetSocketAddress(worker.ip, worker.grpcPort), 10_000);
      plain.getOutputStream().write(MAGIC);
      Socket s = plain;
      if (cloud.caPem != null) {
        SSLSocket tls = (SSLSocket) context(cloud.caPem).getSocketFactory().createSocket(plain, worker.ip, worker.grpcPort, true);
        SSLParameters params = tls.getSSLParameters();
        params.setEndpointIdentificationAlgorithm("HTTPS");
        tls.setSSLParameters(params);
        tls.startHandshake();
        s = tls;
      }
      socket = s;
      out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16));
      in = new DataInputStream(new BufferedInputStream(s.getInputStream(), 1 << 16));
    } catch (IOException e) {
      closeQuietly(plain);
      throw new EddyException("cannot reach Eddy " + worker + ": " + e.getMessage() + "; is the cloud running?", e);
    }
  }

  private static SSLContext context(String caPem) {
    return CONTEXTS.computeIfAbsent(caPem, pem -> {
      try {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        int n = 0;
        for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)))) {
          store.setCertificateEntry("eddy-ca-" + n++, c);
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(store);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, trust.getTrustManagers(), null);
        return ctx;
      } catch (GeneralSecurityException | IOException e) {
        throw new EddyException("cannot use the cloud's CA certificate: " + e.getMessage(), e);
      }
    });
  }

  void sendHeader(Map<String, Object> header) throws IOException {
    writeFrame(Rest.JSON.writeValueAsBytes(header));
    out.flush();
  }

  private void writeFrame(byte[] bytes) throws IOException {
    out.writeInt(bytes.length);
    out.write(bytes);
  }

  /** The worker's JSON answer; an {@code error} in it becomes an exception naming the worker. */
  JsonNode readAnswer(String what) throws IOException {
    int len = in.readInt();
    if (len < 0 || len > MAX_ANSWER) {
      throw new IOException("an answer of " + len + " bytes");
    }
    byte[] bytes = new byte[len];
    in.readFully(bytes);
    JsonNode answer = Rest.JSON.readTree(bytes);
    if (answer.has("error")) {
      throw new EddyException(what + " on Eddy " + worker + " failed: " + answer.get("error").asText());
    }
    return answer;
  }

  InputStream input() {
    return in;
  }

  /**
   * A channel for Arrow's stream writer that sends what it is given as frames of about 1 MiB;
   * {@link FramedChannel#finish} sends the rest and the empty frame that ends the stream.
   */
  FramedChannel framedChannel() {
    return new FramedChannel();
  }

  final class FramedChannel implements WritableByteChannel {
    private final ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
    private boolean open = true;

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = src.remaining();
      while (src.hasRemaining()) {
        if (!buffer.hasRemaining()) {
          flushFrame();
        }
        int take = Math.min(buffer.remaining(), src.remaining());
        ByteBuffer slice = src.slice();
        slice.limit(take);
        buffer.put(slice);
        src.position(src.position() + take);
      }
      return n;
    }

    private void flushFrame() throws IOException {
      if (buffer.position() == 0) {
        return;
      }
      out.writeInt(buffer.position());
      out.write(buffer.array(), 0, buffer.position());
      buffer.clear();
    }

    void finish() throws IOException {
      flushFrame();
      out.writeInt(0);
      out.flush();
    }

    @Override
    public boolean isOpen() {
      return open;
    }

    @Override
    public void close() {
      open = false;
    }
  }

  @Override
  public void close() {
    closeQuietly(socket);
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException ignored) {
      // closing: nothing left to tell
    }
  }
}
