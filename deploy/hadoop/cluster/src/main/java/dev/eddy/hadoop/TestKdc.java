package dev.eddy.hadoop;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.Properties;

import org.apache.hadoop.minikdc.MiniKdc;

/**
 * A Kerberos KDC for the secure process cluster of scripts/hadoop-cluster.sh: Hadoop's MiniKdc
 * (Apache Kerby) on 127.0.0.1, with the principals and keytabs the daemons and the tests use.
 *
 * <pre>
 *   java dev.eddy.hadoop.TestKdc WORKDIR PORT KEYTAB=PRINCIPAL[,PRINCIPAL...]...
 * </pre>
 *
 * <p>Each KEYTAB (a file name in WORKDIR) receives the keys of its principals (names without
 * the realm; the realm is EXAMPLE.COM). The KDC answers on TCP only. When every keytab is
 * written, it writes WORKDIR/krb5.conf for MIT Kerberos and Java clients alike, then the file
 * WORKDIR/ready, and runs until it is killed.
 */
public final class TestKdc {
  private TestKdc() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: TestKdc WORKDIR PORT KEYTAB=PRINCIPAL[,PRINCIPAL...]...");
      System.exit(2);
    }
    File workDir = new File(args[0]);
    workDir.mkdirs();
    Properties conf = MiniKdc.createConf();
    conf.setProperty(MiniKdc.KDC_BIND_ADDRESS, "127.0.0.1");
    conf.setProperty(MiniKdc.KDC_PORT, args[1]);
    // Tickets long enough for any test run; renewable, as a user's tickets are.
    conf.setProperty(MiniKdc.MAX_TICKET_LIFETIME, "86400000");
    conf.setProperty(MiniKdc.MAX_RENEWABLE_LIFETIME, "604800000");
    MiniKdc kdc = new MiniKdc(conf, workDir);
    kdc.start();
    Runtime.getRuntime().addShutdownHook(new Thread(kdc::stop));

    for (int i = 2; i < args.length; i++) {
      String[] spec = args[i].split("=", 2);
      if (spec.length != 2 || spec[1].isEmpty()) {
        throw new IllegalArgumentException("not KEYTAB=PRINCIPAL[,PRINCIPAL...]: " + args[i]);
      }
      kdc.createPrincipal(new File(workDir, spec[0]), spec[1].split(","));
    }

    // MiniKdc's own krb5.conf names the KDC as "localhost" and lets clients try UDP first;
    // this one names 127.0.0.1, speaks TCP only (the KDC has no UDP port), and takes host
    // names as they are written (no DNS canonicalisation or reverse lookups on a test host).
    String realm = kdc.getRealm();
    String krb5 = String.join("\n",
        "[libdefaults]",
        "  default_realm = " + realm,
        "  udp_preference_limit = 1",
        "  dns_lookup_kdc = false",
        "  dns_lookup_realm = false",
        "  dns_canonicalize_hostname = false",
        "  rdns = false",
        "  ignore_acceptor_hostname = true",
        "  forwardable = true",
        "  renew_lifetime = 7d",
        "",
        "[realms]",
        "  " + realm + " = {",
        "    kdc = 127.0.0.1:" + kdc.getPort(),
        "  }",
        "",
        "[domain_realm]",
        "  localhost = " + realm,
        "");
    File target = new File(workDir, "krb5.conf");
    File temporary = new File(workDir, "krb5.conf.tmp");
    Files.write(temporary.toPath(), krb5.getBytes(StandardCharsets.UTF_8));
    Files.move(temporary.toPath(), target.toPath(), StandardCopyOption.REPLACE_EXISTING,
        StandardCopyOption.ATOMIC_MOVE);
    Files.write(new File(workDir, "ready").toPath(), realm.getBytes(StandardCharsets.UTF_8));
    System.err.println("TestKdc: realm " + realm + " on 127.0.0.1:" + kdc.getPort());
    Thread.currentThread().join();
  }
}
