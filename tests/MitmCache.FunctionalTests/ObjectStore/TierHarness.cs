using Amazon.Runtime;
using Microsoft.Extensions.Logging;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using Serilog;
using Serilog.Extensions.Logging;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// One test's view of the engine: a tier on its own prefix of the shared bucket, with short timeouts, its own
/// meter (read through <see cref="Metrics"/>) and every log line at Debug and above collected in <see cref="Log"/>.
/// </summary>
internal sealed class TierHarness : IDisposable
{
    private readonly Serilog.Core.Logger _serilog;
    private readonly SerilogLoggerFactory _loggers;

    private TierHarness(CephRgw engine, BlobStoreSettings settings, AWSCredentials credentials)
    {
        Engine = engine;
        Settings = settings;
        Log = new CollectingSink();
        _serilog = new LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(Log).CreateLogger();
        _loggers = new SerilogLoggerFactory(_serilog);
        BlobStoreMetrics = new BlobStoreMetrics();
        Metrics = new MeterRecorder(BlobStoreMetrics.Meter);
        Tier = new S3BlobTier(settings, credentials, BlobStoreMetrics, TimeProvider.System, _loggers.CreateLogger<S3BlobTier>());
    }

    public CephRgw Engine { get; }

    public BlobStoreSettings Settings { get; }

    public CollectingSink Log { get; }

    public BlobStoreMetrics BlobStoreMetrics { get; }

    public MeterRecorder Metrics { get; }

    public S3BlobTier Tier { get; }

    /// <summary>A tier as the options would build it (the engine's keys from the environment), on a fresh prefix.</summary>
    public static TierHarness Create(CephRgw engine, Func<BlobStoreSettings, BlobStoreSettings>? tune = null, AWSCredentials? credentials = null)
    {
        var errors = new List<string>();
        var settings = BlobStoreSettings.Parse($"s3://{CephEngineFixture.Bucket}/test-{Guid.NewGuid():N}", engine.Endpoint.ToString(), null, errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors));
        settings = settings with
        {
            RequestTimeout = TimeSpan.FromSeconds(2),
            StallTimeout = TimeSpan.FromSeconds(3), // parts in parallel on a loaded 2-core machine: an engine that answers, slowly
            BreakerOpen = TimeSpan.FromMilliseconds(300),
            BreakerMaxOpen = TimeSpan.FromSeconds(1),
            UploadRetryMin = TimeSpan.FromMilliseconds(100),
        };
        credentials ??= S3Credentials.Resolve(name => engine.CredentialVariables.GetValueOrDefault(name), errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors));
        return new TierHarness(engine, tune?.Invoke(settings) ?? settings, credentials);
    }

    public ILogger<T> CreateLogger<T>() => _loggers.CreateLogger<T>();

    /// <summary>Writes <paramref name="size"/> seeded random bytes to <paramref name="path"/>; returns their digest.</summary>
    public static Digest WriteBlob(string path, long size, int seed)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var random = new Random(seed);
        var buffer = new byte[1 << 20];
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        using (var file = File.Create(path))
        {
            for (long written = 0; written < size; written += buffer.Length)
            {
                var chunk = (int)Math.Min(buffer.Length, size - written);
                random.NextBytes(buffer.AsSpan(0, chunk));
                file.Write(buffer, 0, chunk);
                hash.AppendData(buffer, 0, chunk);
            }
        }

        return Digest.TryParse($"sha256:{Convert.ToHexStringLower(hash.GetHashAndReset())}", out var digest) ? digest : throw new InvalidOperationException();
    }

    /// <summary>Writes a seeded blob to <paramref name="path"/> and uploads it through the tier; returns its digest.</summary>
    public async Task<Digest> UploadNewAsync(string path, long size, int seed)
    {
        var digest = WriteBlob(path, size, seed);
        Assert.Equal(UploadOutcome.Uploaded, await Tier.UploadAsync(digest, path, "application/octet-stream", default));
        return digest;
    }

    /// <summary>Reads the rest of <paramref name="body"/> and throws away what it reads.</summary>
    public static async Task DrainAsync(Stream body)
    {
        var buffer = new byte[1 << 16];
        while (await body.ReadAsync(buffer) > 0)
        {
        }
    }

    /// <summary>The object's bytes, read with the engine's own client (not the tier).</summary>
    public async Task<byte[]?> ReadObjectDirectlyAsync(Digest digest)
    {
        using var client = Engine.CreateClient();
        try
        {
            using var response = await client.GetObjectAsync(CephEngineFixture.Bucket, Tier.Layout.BlobKey(digest));
            using var memory = new MemoryStream();
            await response.ResponseStream.CopyToAsync(memory);
            return memory.ToArray();
        }
        catch (Amazon.S3.AmazonS3Exception ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public void Dispose()
    {
        Tier.Dispose();
        Metrics.Dispose();
        BlobStoreMetrics.Dispose();
        _loggers.Dispose();
        _serilog.Dispose();
    }
}
