using System.Text.RegularExpressions;
using MitmCache.Configuration;
using MitmCache.FunctionalTests.Node;

namespace MitmCache.FunctionalTests.Docs;

/// <summary>The Markdown documentation (README.md and docs/) against itself and against the code.</summary>
public sealed partial class DocumentationTests
{
    private static IEnumerable<string> MarkdownFiles() =>
        new[] { RepositoryFiles.Combine("README.md"), RepositoryFiles.Combine("tests", "MitmCache.Benchmarks", "readme.md") }
            .Concat(Directory.Exists(RepositoryFiles.Combine("docs")) ? Directory.EnumerateFiles(RepositoryFiles.Combine("docs"), "*.md") : []);

    private static string AllMarkdown() => string.Join('\n', MarkdownFiles().Select(File.ReadAllText));

    [Fact]
    public void ConfigurationTable_IsGeneratedFromTheOptionDefinitions()
    {
        var text = File.ReadAllText(RepositoryFiles.Combine("docs", "configuration.md"));
        var start = text.IndexOf(OptionDocs.TableStart, StringComparison.Ordinal);
        var end = text.IndexOf(OptionDocs.TableEnd, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "docs/configuration.md has the generated table's markers");

        var documented = text[(start + OptionDocs.TableStart.Length)..end].Trim('\n');

        // On a difference: dotnet run --project src/MitmCache -- help options --markdown, pasted between the markers.
        Assert.Equal(OptionDocs.Markdown(ProxyOptions.All).Trim('\n'), documented);
    }

    [Fact]
    public void ResultHeader_ListsTheSameResultsAsTheRequestMetric()
    {
        var text = AllMarkdown();
        var headers = HeaderValues().Matches(text);
        var metric = MetricResults().Match(text);
        Assert.NotEmpty(headers);
        Assert.True(metric.Success, "the result label of mitmcache_requests_total is documented");

        var inMetric = metric.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries).Order();
        Assert.All(headers, header => Assert.Equal(inMetric, header.Groups[1].Value.Split('|').Order()));
    }

    [Fact]
    public void CachePruneSynopsis_ShowsThatACriterionIsRequired()
    {
        var synopsis = Assert.Single(AllMarkdown().Split('\n'), l => l.TrimStart().StartsWith("mitmcache cache prune", StringComparison.Ordinal));

        Assert.Contains("--older-than", synopsis, StringComparison.Ordinal);
        Assert.Contains("--max-size", synopsis, StringComparison.Ordinal);
        Assert.DoesNotContain("[--older-than", synopsis, StringComparison.Ordinal); // one of them must be given
    }

    [Fact]
    public void RelativeLinks_PointAtFilesThatExist()
    {
        var broken = MarkdownFiles()
            .SelectMany(file => RelativeLink().Matches(File.ReadAllText(file)).Select(m => (File: file, Target: m.Groups[1].Value)))
            .Where(link => !File.Exists(Path.Combine(Path.GetDirectoryName(link.File)!, link.Target)) && !Directory.Exists(Path.Combine(Path.GetDirectoryName(link.File)!, link.Target)))
            .Select(link => $"{Path.GetFileName(link.File)}: {link.Target}")
            .ToList();

        Assert.Empty(broken);
    }

    [GeneratedRegex(@"`X-MitmCache: ([a-z]+(?:\|[a-z]+)+)`")]
    private static partial Regex HeaderValues();

    [GeneratedRegex(@"`result` \(([a-z, ]+)\)")]
    private static partial Regex MetricResults();

    [GeneratedRegex(@"\]\((?!https?:|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)")]
    private static partial Regex RelativeLink();
}
