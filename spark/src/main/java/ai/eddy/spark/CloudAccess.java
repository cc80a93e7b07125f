package ai.eddy.spark;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * What tasks need to reach a cloud's workers: the workers, the cloud's secret (for the
 * one-time HMAC tokens every internal call carries) and CA (to verify the workers' TLS), and
 * the observer's REST API for the driver's commits. It travels inside Spark's tasks, as the
 * Python context's closures do; turn on {@code spark.authenticate} and
 * {@code spark.io.encryption.enabled} where that matters.
 */
public final class CloudAccess implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final SecureRandom RANDOM = new SecureRandom();

  /** One worker of the cloud and where it runs. */
  public static final class Worker implements Serializable {
    private static final long serialVersionUID = 1L;
    final int id;
    final String ip;
    final int grpcPort;
    /** The host Spark knows its executor by (for preferred locations). */
    final String host;
    /** Its executor's id, when the JVM context started it; else null. */
    final String executorId;

    Worker(int id, String ip, int grpcPort, String host, String executorId) {
      this.id = id;
      this.ip = ip;
      this.grpcPort = grpcPort;
      this.host = host;
      this.executorId = executorId;
    }

    /** Whether this worker runs on the host Spark calls {@code host} (or {@code hostname}). */
    boolean isOn(String host, String hostname) {
      return this.host != null && (this.host.equals(host) || this.host.equals(hostname)) || ip.equals(host) || ip.equals(address(host));
    }

    @Override
    public String toString() {
      return "worker " + id + " (" + ip + ":" + grpcPort + ")";
    }
  }

  private static final java.util.Map<String, String> ADDRESSES = new java.util.concurrent.ConcurrentHashMap<>();

  /** The IP address a host name resolves to (Spark may call an executor's host "localhost"). */
  static String address(String host) {
    if (host == null) {
      return null;
    }
    return ADDRESSES.computeIfAbsent(host, h -> {
      try {
        return java.net.InetAddress.getByName(h).getHostAddress();
      } catch (java.net.UnknownHostException e) {
        return h;
      }
    });
  }

  final String cloudName;
  private final String secret;
  /** The CA of the workers' certificates (PEM), or null when the cloud's channels are plain. */
  final String caPem;
  final List<Worker> workers;
  final Rest rest;

  CloudAccess(String cloudName, String secret, String caPem, List<Worker> workers, Rest rest) {
    this.cloudName = cloudName;
    this.secret = secret.strip();
    this.caPem = caPem;
    this.workers = new ArrayList<>(workers);
    this.rest = rest;
  }

  /**
   * A token a node accepts once: {@code millis.nonce.hex(HMAC-SHA256(secret,
   * eddy-v2|cloud|millis|nonce))}, as {@code eddy_common::auth} checks it.
   */
  String token() {
    long millis = System.currentTimeMillis();
    byte[] nonce = new byte[8];
    RANDOM.nextBytes(nonce);
    String nonceHex = HexFormat.of().formatHex(nonce);
    return millis + "." + nonceHex + "." + hmacHex(secret, "eddy-v2|" + cloudName + "|" + millis + "|" + nonceHex);
  }

  /** HMAC-SHA256 of {@code message} keyed with the cloud's secret (as text), in hex. */
  static String hmacHex(String secret, String message) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret.strip().getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return HexFormat.of().formatHex(mac.doFinal(message.getBytes(StandardCharsets.UTF_8)));
    } catch (GeneralSecurityException e) {
      throw new EddyException("this JVM cannot compute HMAC-SHA256: " + e.getMessage(), e);
    }
  }

  /**
   * The worker a task on this executor writes to: the one started in this executor, else one
   * on this host, else any; spread over the candidates by partition.
   */
  Worker workerFor(int partition, String executorId, String host, String hostname) {
    List<Worker> same = new ArrayList<>();
    for (Worker w : workers) {
      if (executorId != null && executorId.equals(w.executorId)) {
        same.add(w);
      }
    }
    if (same.isEmpty()) {
      for (Worker w : workers) {
        if (w.isOn(host, hostname)) {
          same.add(w);
        }
      }
    }
    List<Worker> candidates = same.isEmpty() ? workers : same;
    if (candidates.isEmpty()) {
      throw new EddyException("the cloud has no workers to write to");
    }
    return candidates.get(Math.floorMod(partition, candidates.size()));
  }
}
