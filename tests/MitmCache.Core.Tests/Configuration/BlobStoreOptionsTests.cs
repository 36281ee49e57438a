using System.Collections;
using MitmCache.Configuration;

namespace MitmCache.Core.Tests.Configuration;

/// <summary><c>--blob-store</c>, <c>--s3-endpoint</c>, <c>--s3-region</c> through the whole loader; the keys only from the environment.</summary>
public class BlobStoreOptionsTests
{
    private const string Secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    private static Hashtable Keys() => new() { ["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE", ["AWS_SECRET_ACCESS_KEY"] = Secret };

    [Fact]
    public void Load_BlobStoreWithEndpointAndKeysInTheEnvironment_TierConfigured()
    {
        var errors = new List<string>();

        var settings = SettingsLoader.Load(["--blob-store", "s3://cache/prod", "--s3-endpoint", "http://127.0.0.1:7480"], Keys(), errors);

        Assert.Empty(errors);
        var tier = Assert.IsType<global::MitmCache.ObjectStore.BlobStoreSettings>(settings!.BlobStore);
        Assert.Equal("cache", tier.Bucket);
        Assert.Equal("prod", tier.Prefix);
        Assert.Equal(new Uri("http://127.0.0.1:7480"), tier.Endpoint);
        Assert.Equal("us-east-1", tier.Region);
        Assert.DoesNotContain(Secret, settings.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_FromTheEnvironmentOnly_TierConfigured()
    {
        var environment = Keys();
        environment["MITMCACHE_BLOB_STORE"] = "s3://cache";
        environment["MITMCACHE_S3_ENDPOINT"] = "https://s3.eu-west-1.amazonaws.com";
        environment["MITMCACHE_S3_REGION"] = "eu-west-1";
        var errors = new List<string>();

        var settings = SettingsLoader.Load([], environment, errors);

        Assert.Empty(errors);
        Assert.Equal("eu-west-1", settings!.BlobStore!.Region);
    }

    [Fact]
    public void Load_NoBlobStore_NoTierAndNoKeysNeeded()
    {
        var errors = new List<string>();

        var settings = SettingsLoader.Load([], new Hashtable(), errors);

        Assert.Empty(errors);
        Assert.Null(settings!.BlobStore);
    }

    [Fact]
    public void Load_EveryProblemAtOnce_NoValueEchoed()
    {
        var errors = new List<string>();

        // A bad bucket, an endpoint carrying a key, a bad region, no keys in the environment: four problems, one run.
        var settings = SettingsLoader.Load(["--blob-store", "s3://UPPER", "--s3-endpoint", "http://AKID:PlainSecret42@127.0.0.1:7480", "--s3-region", "Not A Region"],
            new Hashtable { ["HOME"] = "/nonexistent" }, errors);

        Assert.Null(settings);
        Assert.Contains(errors, e => e.Contains("--blob-store", StringComparison.Ordinal) && e.Contains("bucket name", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--s3-endpoint must not contain credentials", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--s3-region", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("no S3 credentials", StringComparison.Ordinal));
        Assert.All(errors, e => Assert.DoesNotContain("PlainSecret42", e, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--s3-endpoint", "http://127.0.0.1:7480")]
    [InlineData("--s3-region", "eu-west-1")]
    public void Load_S3OptionWithoutBlobStore_Refused(string flag, string value)
    {
        var errors = new List<string>();

        Assert.Null(SettingsLoader.Load([flag, value], Keys(), errors));
        Assert.Contains(errors, e => e.Contains($"{flag} needs --blob-store", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--aws-access-key-id")]
    [InlineData("--aws-secret-access-key")]
    [InlineData("--s3-secret-key")]
    public void Load_KeyAsAFlag_NoSuchOption(string flag)
    {
        var errors = new List<string>();

        Assert.Null(SettingsLoader.Load(["--blob-store", "s3://cache", "--s3-endpoint", "http://127.0.0.1:7480", flag, "AKIDEXAMPLE"], Keys(), errors));
        Assert.Contains(errors, e => e.Contains(flag, StringComparison.Ordinal));
    }
}
