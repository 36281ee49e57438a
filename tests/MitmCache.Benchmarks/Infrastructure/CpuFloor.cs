using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Caching;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// CPU-seconds per GiB of the work a cold miss cannot avoid, each .NET primitive alone, each on a thread of
/// its own whose CPU time (user + system, <c>CLOCK_THREAD_CPUTIME_ID</c>) is read before and after:
/// receiving and decrypting the upstream's TLS, SHA-256, writing the file with the fill's writeback and
/// fsync, encrypting and sending to the client. The TLS halves run over a loopback TCP pair, the receiving
/// side pinned to the cipher suite the proxy gets from the registry, the sending side to the one curl gets
/// from the proxy (both found out first, against the same peers).
/// </summary>
/// <param name="Decrypt">SslStream client reads (socket receive + decrypt), per GiB.</param>
/// <param name="Encrypt">SslStream server writes in 256 KiB chunks (encrypt + socket send), per GiB.</param>
/// <param name="Sha256">IncrementalHash SHA-256 over 64 KiB appends, per GiB.</param>
/// <param name="Write">64 KiB file writes with <see cref="Writeback.Start"/> every <see cref="Writeback.Stride"/>, per GiB.</param>
/// <param name="Fsync">The fsync after the writes: CPU, per GiB.</param>
/// <param name="FsyncWall">The same fsync's wall time, seconds.</param>
/// <param name="ReadBack">Reading the just-written file back in 256 KiB reads (what a hit or a follower of a fill does), per GiB; not in the floor.</param>
internal sealed record CpuFloor(double Decrypt, double Encrypt, double Sha256, double Write, double Fsync, double FsyncWall, double ReadBack,
    TlsCipherSuite UpstreamSuite, TlsCipherSuite ClientSuite)
{
    private const int ChunkSize = 64 * 1024;
    private const int SendSize = 256 * 1024;

    /// <summary>The floor: decrypt + SHA-256 + write + fsync + encrypt, CPU-seconds per GiB.</summary>
    public double Sum => Decrypt + Sha256 + Write + Fsync + Encrypt;

    /// <summary>Each primitive <paramref name="repetitions"/> times over <paramref name="size"/> bytes; medians, scaled to one GiB.</summary>
    public static async Task<CpuFloor> MeasureAsync(BenchWorld world, long size, int repetitions)
    {
        using var certificate = world.Pki.IssueServerCertificate(Hosts.Registry);
        var upstreamSuite = await UpstreamSuiteAsync(world);
        var clientSuite = await CurlSuiteAsync(world, certificate);
        var data = new byte[1 << 20];
        new Random(18).NextBytes(data);
        var perGiB = (double)(1L << 30) / size;
        List<double> decrypt = [], encrypt = [], sha = [], write = [], fsync = [], fsyncWall = [], readBack = [];
        for (var rep = 0; rep < repetitions; rep++)
        {
            decrypt.Add(TlsPair(certificate, world.Pki.CaCertificate, upstreamSuite, data, size).Receiver * perGiB);
            encrypt.Add(TlsPair(certificate, world.Pki.CaCertificate, clientSuite, data, size).Sender * perGiB);
            sha.Add(OnThread(() => Hash(data, size)) * perGiB);
            var file = world.Dir.Combine("cpu-floor");
            try
            {
                var (w, f, fw) = WriteFile(file, data, size);
                write.Add(w * perGiB);
                fsync.Add(f * perGiB);
                fsyncWall.Add(fw);
                readBack.Add(OnThread(() => ReadFile(file)) * perGiB);
            }
            finally
            {
                File.Delete(file);
            }
        }

        return new CpuFloor(Stats.Median(decrypt), Stats.Median(encrypt), Stats.Median(sha), Stats.Median(write), Stats.Median(fsync),
            Stats.Median(fsyncWall), Stats.Median(readBack), upstreamSuite, clientSuite);
    }

    /// <summary>The suite a default SslStream client (as the proxy's HttpClient) negotiates with the registry.</summary>
    private static async Task<TlsCipherSuite> UpstreamSuiteAsync(BenchWorld world)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, world.Registry.Port);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(ClientOptions(world.Pki.CaCertificate));
        return tls.NegotiatedCipherSuite;
    }

    /// <summary>The suite curl negotiates with a default SslStream server (as Kestrel's, in the proxy).</summary>
    private static async Task<TlsCipherSuite> CurlSuiteAsync(BenchWorld world, X509Certificate2 certificate)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var curl = Curl.RunAsync(["-sS", "-o", "/dev/null", "--max-time", "10", "--cacert", world.Pki.CaCertPath,
            "--connect-to", $"{Hosts.Registry}:{port}:127.0.0.1:{port}", $"https://{Hosts.Registry}:{port}/"], env: null, CancellationToken.None);
        using var accepted = await listener.AcceptTcpClientAsync();
        await using var tls = new SslStream(accepted.GetStream());
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = certificate,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
        });
        var suite = tls.NegotiatedCipherSuite;
        accepted.Close();
        await curl; // fails (no HTTP answer); only the handshake mattered
        return suite;
    }

    private static SslClientAuthenticationOptions ClientOptions(X509Certificate2 root)
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(root);
        return new SslClientAuthenticationOptions { TargetHost = Hosts.Registry, CertificateChainPolicy = policy };
    }

    /// <summary>
    /// <paramref name="size"/> bytes through a TLS connection over loopback TCP, the server pinned to
    /// <paramref name="suite"/>, each end synchronous on a thread of its own; the CPU-seconds of each end
    /// from the end of the handshake to its last byte.
    /// </summary>
    private static (double Sender, double Receiver) TlsPair(X509Certificate2 certificate, X509Certificate2 root, TlsCipherSuite suite, byte[] data, long size)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = new MeasuredThread(() =>
        {
            using var client = listener.AcceptTcpClient();
            using var tls = new SslStream(client.GetStream());
            tls.AuthenticateAsServer(new SslServerAuthenticationOptions { ServerCertificate = certificate, CipherSuitesPolicy = Only(suite) });
            var start = ThreadCpuSeconds();
            for (long sent = 0; sent < size; sent += SendSize)
            {
                var offset = (int)(sent % data.Length);
                tls.Write(data, offset, (int)Math.Min(SendSize, Math.Min(size - sent, data.Length - offset)));
            }

            tls.Flush();
            return ThreadCpuSeconds() - start;
        });
        var reader = new MeasuredThread(() =>
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            using var tls = new SslStream(client.GetStream());
            tls.AuthenticateAsClient(ClientOptions(root));
            if (tls.NegotiatedCipherSuite != suite)
            {
                throw new InvalidOperationException($"negotiated {tls.NegotiatedCipherSuite}, wanted {suite}");
            }

            var buffer = new byte[ChunkSize];
            var start = ThreadCpuSeconds();
            long received = 0;
            int read;
            while (received < size && (read = tls.Read(buffer)) > 0)
            {
                received += read;
            }

            var seconds = ThreadCpuSeconds() - start;
            return received == size ? seconds : throw new InvalidOperationException($"received {received} of {size} bytes");
        });
        return (server.Join(), reader.Join());
    }

    private static CipherSuitesPolicy Only(TlsCipherSuite suite) =>
        OperatingSystem.IsLinux() ? new CipherSuitesPolicy([suite]) : throw new PlatformNotSupportedException("the benchmarks run on Linux");

    private static void Hash(byte[] data, long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long done = 0; done < size; done += ChunkSize)
        {
            hash.AppendData(data, (int)(done % data.Length), ChunkSize);
        }

        hash.GetHashAndReset();
    }

    /// <summary>The fill's write pattern (Caching/BlobCache.RunFillAsync): 64 KiB writes, writeback started every 8 MiB, one fsync.</summary>
    private static (double Write, double Fsync, double FsyncWall) WriteFile(string path, byte[] data, long size)
    {
        double fsync = 0, wall = 0;
        var write = new MeasuredThread(() =>
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            var start = ThreadCpuSeconds();
            long flushed = 0;
            for (long offset = 0; offset < size; offset += ChunkSize)
            {
                RandomAccess.Write(handle, data.AsSpan((int)(offset % data.Length), ChunkSize), offset);
                if (offset + ChunkSize - flushed >= Writeback.Stride)
                {
                    Writeback.Start(handle, flushed, offset + ChunkSize - flushed);
                    flushed = offset + ChunkSize;
                }
            }

            var written = ThreadCpuSeconds() - start;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            start = ThreadCpuSeconds();
            RandomAccess.FlushToDisk(handle);
            fsync = ThreadCpuSeconds() - start;
            wall = clock.Elapsed.TotalSeconds;
            return written;
        }).Join();
        return (write, fsync, wall);
    }

    private static void ReadFile(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var buffer = new byte[SendSize];
        long offset = 0;
        int read;
        while ((read = RandomAccess.Read(handle, buffer, offset)) > 0)
        {
            offset += read;
        }
    }

    /// <summary>Runs <paramref name="work"/> on a new thread; its CPU-seconds.</summary>
    private static double OnThread(Action work) => new MeasuredThread(() =>
    {
        var start = ThreadCpuSeconds();
        work();
        return ThreadCpuSeconds() - start;
    }).Join();

    /// <summary>CPU-seconds (user + system) the calling thread has used.</summary>
    public static double ThreadCpuSeconds()
    {
        const int ClockThreadCpuTimeId = 3;
        return ClockGetTime(ClockThreadCpuTimeId, out var time) == 0 ? time.Seconds + (time.Nanoseconds / 1e9)
            : throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>A thread of its own for one measured piece of work, which returns its own CPU-seconds; failures come back from <see cref="Join"/>.</summary>
    private sealed class MeasuredThread
    {
        private readonly Thread _thread;
        private double _seconds;
        private System.Runtime.ExceptionServices.ExceptionDispatchInfo? _failure;

        public MeasuredThread(Func<double> work)
        {
            _thread = new Thread(() =>
            {
                try
                {
                    _seconds = work();
                }
                catch (Exception ex)
                {
                    _failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
                }
            });
            _thread.Start();
        }

        public double Join()
        {
            _thread.Join();
            _failure?.Throw();
            return _seconds;
        }
    }
}
