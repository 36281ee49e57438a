using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// The handshake floor of the platform the proxy is built on: a bare Kestrel in its own process with the proxy's
/// transport and TLS settings (inline scheduling, the TLS callback, a P-256 leaf sent with its root, HTTP/1.1 and
/// HTTP/2 offered) and none of MitmCache's code, answering every GET with the same 4 KiB. One port takes TLS at once;
/// the other first answers a CONNECT with 200, as the proxy does, and then takes TLS. Scenario 5 sets the proxy
/// against it to tell what MitmCache's own code costs per connection from what .NET's TLS and Kestrel cost.
/// </summary>
internal sealed class KestrelFloor : IDisposable
{
    public const string Verb = "kestrel-floor";

    private readonly BackgroundProcess _process;

    private KestrelFloor(BackgroundProcess process, int tlsPort, int connectPort)
    {
        _process = process;
        TlsPort = tlsPort;
        ConnectPort = connectPort;
    }

    /// <summary>TLS at once.</summary>
    public int TlsPort { get; }

    /// <summary>A CONNECT head first, answered 200, then TLS.</summary>
    public int ConnectPort { get; }

    public int Pid => _process.Pid;

    public TimeSpan CpuTime() => ProcStat.CpuTime(Pid);

    /// <summary>Starts the server as a child process of this program (<see cref="Verb"/>), with the proxy's GC settings and environment.</summary>
    public static async Task<KestrelFloor> StartAsync(BenchWorld world, string host)
    {
        var (cert, key) = world.Pki.IssueServer("kestrel-floor", host);
        int tlsPort = FreePort.Get(), connectPort = FreePort.Get();
        var env = world.ProxyEnvironment();
        env["DOTNET_gcConcurrent"] = "0"; // as the proxy's runtimeconfig says
        var process = BackgroundProcess.Start(Environment.ProcessPath!,
            [typeof(KestrelFloor).Assembly.Location, Verb, cert, key, world.Pki.CaCertPath, Text(tlsPort), Text(connectPort)], env);
        var floor = new KestrelFloor(process, tlsPort, connectPort);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await FreePort.IsListeningAsync(tlsPort) || !await FreePort.IsListeningAsync(connectPort))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                var output = process.DescribeOutput();
                floor.Dispose();
                throw new InvalidOperationException($"the bare Kestrel did not start:\n{output}");
            }

            await Task.Delay(50);
        }

        return floor;
    }

    /// <summary>The child process: <c>kestrel-floor CERT KEY ROOT TLS_PORT CONNECT_PORT</c>; runs until killed.</summary>
    public static async Task<int> ServeAsync(string[] args)
    {
        var leaf = X509Certificate2.CreateFromPemFile(args[1], args[2]);
        var root = X509CertificateLoader.LoadCertificateFromFile(args[3]);
        var tls = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(leaf, [root], offline: true),
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
        };
        var body = new byte[4096];

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            void Https(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = _ => ValueTask.FromResult(tls) });
            }

            kestrel.Listen(IPAddress.Loopback, int.Parse(args[4], CultureInfo.InvariantCulture), Https);
            kestrel.Listen(IPAddress.Loopback, int.Parse(args[5], CultureInfo.InvariantCulture), listen =>
            {
                listen.Use(next => async connection =>
                {
                    if (await SkipHeadAsync(connection.Transport.Input))
                    {
                        await connection.Transport.Output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray());
                        await next(connection);
                    }
                });
                Https(listen);
            });
        });
        var app = builder.Build();
        app.Run(context =>
        {
            context.Response.ContentLength = body.Length;
            context.Response.ContentType = "application/octet-stream";
            return context.Response.Body.WriteAsync(body).AsTask();
        });
        await app.RunAsync();
        return 0;
    }

    /// <summary>Reads up to and past the first blank line; false if the connection ends first.</summary>
    private static async Task<bool> SkipHeadAsync(PipeReader input)
    {
        while (true)
        {
            var read = await input.ReadAsync();
            var reader = new SequenceReader<byte>(read.Buffer);
            if (reader.TryReadTo(out ReadOnlySequence<byte> _, "\r\n\r\n"u8))
            {
                input.AdvanceTo(reader.Position);
                return true;
            }

            input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            if (read.IsCompleted)
            {
                return false;
            }
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    public void Dispose() => _process.Dispose();
}
