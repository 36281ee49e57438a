using System.Text;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public sealed class ManifestFormatTests
{
    private const string OciManifest = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},"layers":[]}""";
    private const string OciIndex = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}""";
    private const string DockerManifest = """{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[{}]}""";
    private const string DockerList = """{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{}]}""";
    private const string DockerV1 = """{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"history":[],"signatures":[]}""";

    private static string? Check(string body, string? contentType) => ManifestFormat.Check(Encoding.UTF8.GetBytes(body), contentType, out _);

    [Theory]
    [InlineData(OciManifest, MediaTypes.OciManifest, MediaTypes.OciManifest)]
    [InlineData(OciManifest, MediaTypes.OciManifest + "; charset=utf-8", MediaTypes.OciManifest)]
    [InlineData(OciManifest, "application/json", MediaTypes.OciManifest)] // no manifest Content-Type: the body's own claim
    [InlineData(OciIndex, MediaTypes.OciIndex, MediaTypes.OciIndex)]
    [InlineData(DockerManifest, MediaTypes.DockerManifest, MediaTypes.DockerManifest)]
    [InlineData(DockerList, MediaTypes.DockerManifestList, MediaTypes.DockerManifestList)]
    [InlineData(DockerV1, MediaTypes.DockerManifestV1Signed, MediaTypes.DockerManifestV1Signed)]
    [InlineData("""{"schemaVersion":2,"config":{},"layers":[]}""", MediaTypes.OciManifest, MediaTypes.OciManifest)] // OCI may omit mediaType
    public void Check_ManifestOfTheTypeItClaims_ThatType(string body, string contentType, string expected)
    {
        Assert.Equal(expected, Check(body, contentType));
    }

    [Theory]
    [InlineData("<html><body>captive portal</body></html>", MediaTypes.OciManifest)]
    [InlineData("""{"hello":"world"}""", MediaTypes.OciManifest)]
    [InlineData("""["not","an","object"]""", MediaTypes.OciManifest)]
    [InlineData(OciIndex, MediaTypes.OciManifest)] // an index served as a manifest
    [InlineData(OciManifest, MediaTypes.DockerManifest)] // says OCI, served as Docker
    [InlineData(OciManifest, "text/html")]
    [InlineData("""{"schemaVersion":2,"config":{},"layers":[]}""", "application/json")] // claims nothing
    [InlineData("""{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}""", MediaTypes.OciManifest)]
    [InlineData("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":{}}""", MediaTypes.OciManifest)]
    [InlineData("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":"x","layers":[]}""", MediaTypes.OciManifest)]
    [InlineData("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}""", MediaTypes.OciIndex)]
    [InlineData("", MediaTypes.OciManifest)]
    public void Check_AnythingElse_NullWithAReason(string body, string? contentType)
    {
        Assert.Null(ManifestFormat.Check(Encoding.UTF8.GetBytes(body), contentType, out var problem));
        Assert.NotEmpty(problem);
    }
}
