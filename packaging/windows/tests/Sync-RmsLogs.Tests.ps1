<#
  Pester 5 tests of Sync-RmsLogs.ps1's functions (no AIPService module, no event log needed):
      Install-Module Pester -MinimumVersion 5.0 -Scope CurrentUser
      Invoke-Pester .\packaging\windows\tests
  Runs on Windows PowerShell 5.1 and PowerShell 7 (also PowerShell 7 on Linux/macOS).
#>

BeforeAll {
    . (Join-Path $PSScriptRoot '..\Sync-RmsLogs.ps1')
    $script:Ns = 'http://schemas.microsoft.com/win/2004/08/events/event'
    function New-EventXml([string] $Time, [long] $Id) {
        "<Event xmlns='$($script:Ns)'><System><Provider Name='Microsoft RMS connector'/><EventID>1000</EventID>" +
        "<TimeCreated SystemTime='$Time'/><EventRecordID>$Id</EventRecordID><Channel>Application</Channel>" +
        "<Computer>RMSCON01</Computer></System><EventData><Data>x</Data></EventData></Event>"
    }
}

Describe 'Get-UsageLogDays' {
    It 'fetches InitialDays whole days up to yesterday on the first run' {
        $days = Get-UsageLogDays -NowUtc ([datetime]'2024-03-07T05:00:00Z').ToUniversalTime() -InitialDays 3
        $days | Should -Be @('2024-03-04', '2024-03-05', '2024-03-06')
    }
    It 're-fetches the last OverlapDays complete days, then the new ones, never today' {
        $days = Get-UsageLogDays -LastCompleteDay '2024-03-04' -NowUtc ([datetime]'2024-03-07T23:59:00Z').ToUniversalTime() -OverlapDays 2
        $days | Should -Be @('2024-03-03', '2024-03-04', '2024-03-05', '2024-03-06')
    }
    It 'fetches only the overlap when yesterday is already complete' {
        $days = Get-UsageLogDays -LastCompleteDay '2024-03-06' -NowUtc ([datetime]'2024-03-07T01:00:00Z').ToUniversalTime() -OverlapDays 2
        $days | Should -Be @('2024-03-05', '2024-03-06')
    }
    It 'fetches nothing again with no overlap and nothing new' {
        $days = Get-UsageLogDays -LastCompleteDay '2024-03-06' -NowUtc ([datetime]'2024-03-07T01:00:00Z').ToUniversalTime() -OverlapDays 0
        @($days).Count | Should -Be 0
    }
    It 'refuses a day that is not yyyy-MM-dd' {
        { Get-UsageLogDays -LastCompleteDay '03/04/2024' -NowUtc ([datetime]::UtcNow) } | Should -Throw '*yyyy-MM-dd*'
    }
}

Describe 'Get-UsageLogArguments' {
    BeforeAll {
        function Get-NewUserLog { param([string] $Path, [datetime] $ForDate, [switch] $Force, [int] $NumberOfThreads) }
        function Get-OldUserLog { param([string] $Path, [datetime] $ForDate, [switch] $Force) }
    }
    It 'passes -NumberOfThreads where the cmdlet has it, and the bare date' {
        $a = Get-UsageLogArguments -Command (Get-Command Get-NewUserLog) -Path 'D:\x' -Day '2024-03-04' -NumberOfThreads 8
        $a.NumberOfThreads | Should -Be 8
        $a.ForDate.ToString('yyyy-MM-dd HH:mm') | Should -Be '2024-03-04 00:00'
        $a.ForDate.Kind | Should -Be 'Unspecified'
        $a.Force | Should -BeTrue
    }
    It 'leaves it out where the cmdlet lacks it' {
        $a = Get-UsageLogArguments -Command (Get-Command Get-OldUserLog) -Path 'D:\x' -Day '2024-03-04' -NumberOfThreads 8
        $a.ContainsKey('NumberOfThreads') | Should -BeFalse
    }
}

Describe 'state file' {
    It 'round-trips and survives a rewrite' {
        $path = Join-Path $TestDrive 'state.json'
        $state = Read-SyncState -Path $path
        $state.usageLogs.lastCompleteDay | Should -BeNullOrEmpty
        $state.usageLogs.lastCompleteDay = '2024-03-04'
        $state.events['ecma2host'] = New-EventPosition -LastTime '2024-03-04T14:15:07.1270621Z' -LastRecordId 1202
        Write-SyncState -Path $path -State $state
        Write-SyncState -Path $path -State $state
        $again = Read-SyncState -Path $path
        $again.usageLogs.lastCompleteDay | Should -Be '2024-03-04'
        $again.events['ecma2host'].lastRecordId | Should -Be 1202
        # exact to the 100 ns, whichever PowerShell read the JSON
        $again.events['ecma2host'].lastTime | Should -Be '2024-03-04T14:15:07.1270621Z'
        $again.usageLogs.lastCompleteDay | Should -BeOfType [string]
        Test-Path "$path.tmp" | Should -BeFalse
    }
    It 'stops on a damaged file instead of starting over' {
        $path = Join-Path $TestDrive 'bad.json'
        Set-Content -LiteralPath $path -Value '{ not json'
        { Read-SyncState -Path $path } | Should -Throw '*not valid JSON*'
    }
}

Describe 'Publish-StagedFile' {
    BeforeEach {
        $target = Join-Path $TestDrive ([guid]::NewGuid())
        $staging = Join-Path $target '.sync-rmslogs\2024-03-04'
        New-Item -ItemType Directory -Force -Path $staging | Out-Null
        $now = [datetime]'2024-03-06T00:30:00Z'
    }
    It 'moves a new file into place' {
        Set-Content -LiteralPath (Join-Path $staging 'rmslog.log') -Value 'a'
        Publish-StagedFile -StagedFile (Join-Path $staging 'rmslog.log') -TargetFolder $target -NowUtc $now | Should -Be 'new'
        Test-Path (Join-Path $target 'rmslog.log') | Should -BeTrue
        Test-Path (Join-Path $staging 'rmslog.log') | Should -BeFalse
    }
    It 'drops an identical re-fetch and replaces a changed one' {
        Set-Content -LiteralPath (Join-Path $target 'rmslog.log') -Value 'a'
        Set-Content -LiteralPath (Join-Path $staging 'rmslog.log') -Value 'a'
        Publish-StagedFile -StagedFile (Join-Path $staging 'rmslog.log') -TargetFolder $target -NowUtc $now | Should -Be 'unchanged'
        Set-Content -LiteralPath (Join-Path $staging 'rmslog.log') -Value 'ab'
        Publish-StagedFile -StagedFile (Join-Path $staging 'rmslog.log') -TargetFolder $target -NowUtc $now | Should -Be 'replaced'
        (Get-Content -LiteralPath (Join-Path $target 'rmslog.log')) | Should -Be 'ab'
    }
    It 'names a re-fetch that cannot replace a locked file' {
        Get-RefetchName -Name 'rmslog-2024-03-04.log' -NowUtc $now | Should -Be 'rmslog-2024-03-04-refetch-20240306T003000Z.log'
    }
}

Describe 'event export' {
    It 'filters on the provider and the last time, rounded down to the millisecond' {
        $q = Get-EventQuery -Provider 'Microsoft RMS connector' -LastTime '2024-03-04T14:15:07.4049401Z' -NowUtc ([datetime]::UtcNow)
        $q | Should -Be "*[System[Provider[@Name='Microsoft RMS connector'] and TimeCreated[@SystemTime>='2024-03-04T14:15:07.404Z']]]"
    }
    It 'starts InitialEventDays back on the first run' {
        $q = Get-EventQuery -NowUtc ([datetime]'2024-03-08T00:00:00Z').ToUniversalTime() -InitialEventDays 7
        $q | Should -Be "*[System[TimeCreated[@SystemTime>='2024-03-01T00:00:00.000Z']]]"
    }
    It 'keeps only events after the last exported one' {
        $text = (New-EventXml '2024-03-04T14:15:07.4049401Z' 40212) + "`r`n" +
                (New-EventXml '2024-03-04T14:15:07.4049401Z' 40213) + "`r`n" +
                (New-EventXml '2024-03-04T14:16:00.0000000Z' 40214)
        $events = Split-EventXml $text
        $events.Count | Should -Be 3
        $r = Select-NewEvent -Events $events -LastTime '2024-03-04T14:15:07.4049401Z' -LastRecordId 40212
        $r.Events.Count | Should -Be 2
        $r.LastTime | Should -Be '2024-03-04T14:16:00.0000000Z'
        $r.LastRecordId | Should -Be 40214
        (Select-NewEvent -Events $events -LastTime $r.LastTime -LastRecordId $r.LastRecordId).Events.Count | Should -Be 0
    }
    It 'parses no output as no events' {
        (Split-EventXml '').Count | Should -Be 0
    }
    It 'writes under a hidden temporary name first' {
        $n = Get-ExportFileName -Name 'ecma2host' -NowUtc ([datetime]'2024-03-04T14:15:00.123Z').ToUniversalTime()
        $n.Final | Should -Be 'ecma2host-20240304T141500123Z.xml'
        $n.Temporary | Should -Be '.ecma2host-20240304T141500123Z.xml.partial'
    }
}
