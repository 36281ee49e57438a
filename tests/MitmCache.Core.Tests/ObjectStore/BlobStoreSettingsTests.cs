using MitmCache.ObjectStore;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class BlobStoreSettingsTests
{
    [Fact]
    public void Parse_NothingSet_IsNoTierAndNoError()
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse(null, null, null, errors));
        Assert.Empty(errors);
    }

    [Theory]
    [InlineData("s3://cache", "", "s3://cache")]
    [InlineData("s3://cache/", "", "s3://cache")]
    [InlineData("S3://my.cache-1/cluster/a/", "cluster/a", "s3://my.cache-1/cluster/a")]
    public void Parse_Location_SplitsBucketAndPrefix(string value, string prefix, string location)
    {
        var errors = new List<string>();

        var settings = BlobStoreSettings.Parse(value, "http://127.0.0.1:7480", null, errors);

        Assert.Empty(errors);
        Assert.Equal((prefix, location, "us-east-1"), (settings!.Prefix, settings.Location, settings.Region));
        Assert.Equal(new Uri("http://127.0.0.1:7480/"), settings.Endpoint);
    }

    [Theory]
    [InlineData("cache", "must look like s3://")]
    [InlineData("s3://Cache", "is not a bucket name")]
    [InlineData("s3://ab", "is not a bucket name")]
    [InlineData("s3://a..b", "is not a bucket name")]
    [InlineData("s3://192.168.1.1", "is not a bucket name")]
    [InlineData("s3://cache/a/../b", "the prefix")]
    [InlineData("s3://cache/a//b", "the prefix")]
    [InlineData("s3://cache/a b", "the prefix")]
    public void Parse_BadLocation_IsReported(string value, string message)
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse(value, "http://127.0.0.1:7480", null, errors));

        Assert.Contains(errors, e => e.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(null, "needs --s3-endpoint")]
    [InlineData("ftp://host", "must be an http:// or https:// URL")]
    [InlineData("127.0.0.1:7480", "must be an http:// or https:// URL")]
    [InlineData("https://host/bucket", "scheme, host and port only")]
    [InlineData("https://host/?x=1", "scheme, host and port only")]
    public void Parse_BadEndpoint_IsReported(string? endpoint, string message)
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse("s3://cache", endpoint, null, errors));

        Assert.Contains(errors, e => e.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_EndpointWithCredentials_IsRefusedWithoutRepeatingThem()
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse("s3://cache", "https://AKIDEXAMPLE:s3cr3tValue@s3.example.com", null, errors));

        var error = Assert.Single(errors);
        Assert.Contains("must not contain credentials", error, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3tValue", error, StringComparison.Ordinal);
        Assert.DoesNotContain("AKIDEXAMPLE", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_EveryProblem_IsReportedAtOnce()
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse("s3://B", "nope", "Not A Region", errors));

        Assert.Equal(3, errors.Count);
    }

    [Fact]
    public void Parse_EndpointOrRegionWithoutBlobStore_IsAnError()
    {
        var errors = new List<string>();

        Assert.Null(BlobStoreSettings.Parse(" ", "http://127.0.0.1:7480", "eu-west-1", errors));

        Assert.Equal(["--s3-endpoint needs --blob-store s3://BUCKET[/PREFIX]", "--s3-region needs --blob-store s3://BUCKET[/PREFIX]"], errors);
    }

    [Fact]
    public void Parse_Region_IsKept()
    {
        var settings = BlobStoreSettings.Parse("s3://cache", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", new List<string>());

        Assert.Equal("eu-west-1", settings!.Region);
    }
}
